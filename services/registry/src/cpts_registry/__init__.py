"""Registry service: health professionals, CPTS territories, SAS participation, MT capacity."""
