"""The service layer: a measurement request in; the sequence built, run, stored and analysed; a result out.

The CLI (``instrument.commands``), the GUI (``instrument.gui``) and the scheduler call these functions,
so every front end builds, checks, runs and stores a measurement the same way. Below it: the station
(instruments and the sample description), the sequences, storage and analysis. Errors from here name
settings (``instrument.settings``), which each front end phrases in its own words.

Modules: ``runs`` (run one sequence through the engine into a stored run), ``cw`` (CW-ODMR I-off/I-on
field maps), ``pulsed`` (Rabi, Ramsey, echo, T1, pulsed ODMR), ``lockin`` (the 208 frame/s capture),
``coil_scan`` (combinatorial coil scans), ``report`` (every figure).
"""
