"""Schemathesis hooks for the contract check.

`cursor` is opaque: only a cursor the server returned is valid (a 422 names any other), which no
JSON Schema can express, so the check never invents one.
"""

import schemathesis


@schemathesis.hook
def map_query(context, query):
    if query:
        query.pop("cursor", None)
    return query
