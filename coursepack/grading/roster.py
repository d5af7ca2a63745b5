"""The class list that ties nbgrader's student ids to the learning platform's user names.

A roster is a CSV file with a header row and the columns `id` (the nbgrader student id, the name of
the folder under submitted/) and `username` (the platform's user name, what Blackboard's bulk
download and Grade Centre use); `first_name` and `last_name` are optional:

    id,username,first_name,last_name
    s001,abc123,Ada,Lovelace

`collect` files a platform hand-in under the id whose user name it carries (a user name not on the
roster is filed under itself, with a note); `grades --blackboard` writes the user name of each id.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Person:
    id: str
    username: str
    first_name: str = ""
    last_name: str = ""


def read(path: Path) -> dict[str, Person]:
    """{student id: Person}; ValueError for a file without the `id` and `username` columns or with a repeated entry."""
    with open(path, newline="", encoding="utf-8-sig") as handle:  # spreadsheets save a byte-order mark
        reader = csv.DictReader(handle)
        columns = {name.strip().lower() for name in reader.fieldnames or []}
        if not {"id", "username"} <= columns:
            raise ValueError(f"{path}: a roster needs the columns id and username (found {sorted(columns)})")
        people: dict[str, Person] = {}
        usernames: set[str] = set()
        for line, row in enumerate(reader, start=2):
            row = {(key or "").strip().lower(): (value or "").strip() for key, value in row.items()}
            if not row["id"] and not row["username"]:
                continue
            if not row["id"] or not row["username"]:
                raise ValueError(f"{path}, line {line}: id and username are both needed")
            if row["id"] in people or row["username"] in usernames:
                raise ValueError(f"{path}, line {line}: {row['id']} / {row['username']} is listed twice")
            people[row["id"]] = Person(row["id"], row["username"], row.get("first_name", ""), row.get("last_name", ""))
            usernames.add(row["username"])
    return people


def ids_by_username(people: dict[str, Person]) -> dict[str, str]:
    return {person.username: person.id for person in people.values()}
