"""ODMR fitting, field maps and sensitivity: arrays in, arrays out."""
