"""Which scenes of a DeepMind multi-object file make the train and test splits.

Two protocols, chosen with ``protocol`` (``data.protocol`` in a run config):

- ``"official"`` (default): what the authors' code does (``datasets/multi_object.py`` of the
  TUSK release). Only the first ``records`` records of the file are read; of those, the scenes
  that qualify (CLEVR6: at most 6 objects) are kept, in file order; the **last** ``test`` of
  them are the test split and all the others the train split. On the published
  ``clevr_with_masks_train.tfrecords`` (object counts 3-10, about uniform) roughly half of the
  first 70,000 records qualify, so the train split holds about 25k scenes, not 60k.
- ``"paper"``: the paper's text (Sec. 4.2, following IODINE / Slot Attention): the first
  ``train + test`` qualifying scenes of the file; train = the first ``train``, test = the next
  ``test``. On the published CLEVR file this needs 70,000 scenes with at most 6 objects, which
  its 100,000 records do not hold (about 50k do); lower ``train`` to use it.

For Tetrominoes (no filter) both read the first 60,000 records, 50k train and 10k test.
"""
from __future__ import annotations

from dataclasses import dataclass

PROTOCOLS = ("official", "paper")


@dataclass(frozen=True)
class RecordSplit:
    """A resolved split rule (see the module doc).

    Attributes:
        protocol: ``"official"`` or ``"paper"``.
        records: official: records read from the start of the file (None for paper).
        train: paper: qualifying scenes in the train split (None for official).
        test: qualifying scenes in the test split.
    """

    protocol: str
    records: int | None
    train: int | None
    test: int

    @classmethod
    def resolve(cls, protocol: str | None, defaults: dict[str, dict[str, int]], *, records: int | None = None,
                train: int | None = None, test: int | None = None) -> RecordSplit:
        """The split of ``protocol`` with ``defaults[protocol]`` for sizes left as None.

        Raises:
            ValueError: unknown protocol, a size the protocol does not use, or a size < 1.
        """
        protocol = protocol or "official"
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        for name, value in (("records", records), ("train", train), ("test", test)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"split {name} must be an int >= 1, got {value!r}")
        if protocol == "official" and train is not None:
            raise ValueError("the official protocol has no train size (train = every qualifying scene of the "
                             "first `records` records but the last `test`); set records, or use protocol 'paper'")
        if protocol == "paper" and records is not None:
            raise ValueError("the paper protocol reads qualifying scenes until train + test are found; "
                             "it takes no records count (that is the official protocol's)")
        base = defaults[protocol]
        if protocol == "official":
            return cls(protocol, records or base["records"], None, test or base["test"])
        return cls(protocol, None, train or base["train"], test or base["test"])

    @property
    def wanted(self) -> int | None:
        """Qualifying scenes to collect (paper), or None: every one in ``records`` (official)."""
        return None if self.protocol == "official" else self.train + self.test

    def tag(self) -> str:
        """A short name for cache files: ``official-r70000`` / ``paper-n70000`` (what is collected;
        the test size only moves the train/test boundary)."""
        if self.protocol == "official":
            return f"official-r{self.records}"
        return f"paper-n{self.wanted}"

    def bounds(self, split: str, available: int) -> tuple[int, int]:
        """``[start, stop)`` of ``split`` among the ``available`` collected scenes."""
        if self.protocol == "official":
            first_test = available - self.test
            return (0, first_test) if split == "train" else (first_test, available)
        return (0, self.train) if split == "train" else (self.train, self.train + self.test)

    def check_available(self, available: int, records_read: int, what: str) -> str | None:
        """None when ``available`` qualifying scenes (of ``records_read`` records) suffice, else
        the problem, with the counts, for an error message. ``what``: e.g. "scenes with at most
        6 objects"."""
        if self.protocol == "official":
            if records_read < self.records:
                return (f"holds only {records_read} records; the official protocol reads the first "
                        f"{self.records} (set data.split_records lower for a partial file)")
            if available <= self.test:
                return (f"its first {records_read} records hold {available} {what}; the official protocol "
                        f"needs more than {self.test} (the last {self.test} are the test split)")
            return None
        if available < self.wanted:
            return (f"holds only {available} {what} in its {records_read} records; the paper protocol needs "
                    f"{self.wanted} ({self.train} train + {self.test} test): lower data.split_train or use "
                    f"data.protocol: official")
        return None

    def describe(self) -> str:
        if self.protocol == "official":
            return (f"official protocol: qualifying scenes of the first {self.records} records, "
                    f"the last {self.test} of them for test")
        return f"paper protocol: the first {self.train} qualifying scenes for train, the next {self.test} for test"
