"""The AMHS simulator (`amhs simulate`). Its defaults live here, free of numpy and pandas, so the
command line can show them without loading the simulator."""

DEFAULT_LINES = 3
DEFAULT_DAYS = 30
DEFAULT_SEED = 7
DEFAULT_START = "2026-01-05"
