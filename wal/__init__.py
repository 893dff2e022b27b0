"""Write-ahead log: checksummed frames in segment files, group commit under trio, replay at start-up."""

from wal.errors import LogUnavailable, WalCorruption
from wal.frame import Damage, ScanResult, encode_frame, scan
from wal.log import WriteAheadLog
from wal.recovery import Recovery, TornTail, recover

__all__ = [
    "Damage",
    "LogUnavailable",
    "Recovery",
    "ScanResult",
    "TornTail",
    "WalCorruption",
    "WriteAheadLog",
    "encode_frame",
    "recover",
    "scan",
]
