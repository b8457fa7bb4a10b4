"""A small Basler emulator station for widefield tests: 60 x 60 px, spin cells of 6 px (10 x 10 cells)."""

from importlib import resources

import yaml


def basler_test_station(folder, shape=(60, 60), block=6):
    """The bundled Basler station on a small image whose spin truth has ``block`` px cells."""
    station = yaml.safe_load(resources.files("instrument.stations").joinpath("basler.yaml").read_text())
    station["sim"]["image_shape"] = list(shape)
    station["instruments"]["camera"]["spin_block"] = block
    path = folder / "basler_station.yaml"
    path.write_text(yaml.safe_dump(station, sort_keys=False))  # roles are built in order
    return path
