"""The simulated microscope: one physics World and one simulator per instrument."""
