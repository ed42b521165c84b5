"""Validates FHIR JSON files against FHIR R4 (4.0.1) with the `fhir.resources` package (6.2.0, pydantic 1).

Usage: python validate_r4.py FILE...   Prints one line per file, "OK FILE" or "INVALID FILE: reason";
exit status 1 if any file is invalid. Every entry's resource is validated as its own type as well, so a
malformed Composition inside a Bundle cannot pass as a generic resource.
"""
import json
import sys

import fhir.resources
from fhir.resources import construct_fhir_element

if fhir.resources.__fhir_version__ != "4.0.1":
    sys.exit(f"fhir.resources {fhir.resources.__version__} models FHIR {fhir.resources.__fhir_version__}, not R4 4.0.1")

bad = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    try:
        construct_fhir_element(data["resourceType"], data)
        for e in data.get("entry", []):
            r = e["resource"]
            construct_fhir_element(r["resourceType"], r)
        print(f"OK {path}")
    except Exception as exc:  # pydantic.ValidationError, LookupError, KeyError
        bad += 1
        reason = " ".join(str(exc).split())[:400]
        print(f"INVALID {path}: {reason}")
sys.exit(1 if bad else 0)
