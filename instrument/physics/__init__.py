"""NV spin physics and magnetostatics shared by the simulator and the reconstruction modules."""
