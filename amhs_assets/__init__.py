from amhs_assets.definitions import defs

__all__ = ["defs"]
