"""Write-ahead log: checksummed frames in segment files, group commit under trio, replay at start-up."""

from wal.errors import LogUnavailable, WalCorruption
from wal.format import FORMAT_VERSION, DataFormat, UnsupportedFormat
from wal.frame import Damage, ScanResult, encode_frame, scan
from wal.log import WriteAheadLog
from wal.recovery import Recovery, TornTail, recover

__all__ = [
    "FORMAT_VERSION",
    "Damage",
    "DataFormat",
    "LogUnavailable",
    "Recovery",
    "ScanResult",
    "TornTail",
    "UnsupportedFormat",
    "WalCorruption",
    "WriteAheadLog",
    "encode_frame",
    "recover",
    "scan",
]
