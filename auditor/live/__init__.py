"""The live auditor: a Kafka consumer group that audits as events arrive.

`LiveAuditor` (auditor.live.consumer) is the group member; the checkpoint
protocol that makes its state follow partitions is in auditor.live.checkpoint,
the findings sinks in auditor.live.sinks, its configuration in
auditor.live.config. `auditor run` (auditor/cli_run.py) is the command.
"""

from .checkpoint import CheckpointError, CheckpointTooLarge
from .config import CheckpointSettings, ConsumerSettings, KafkaSettings, LiveConfig, Topics
from .consumer import LiveAuditor, PartitionVerdicts
from .sinks import finding_id

__all__ = ["CheckpointError", "CheckpointSettings", "CheckpointTooLarge", "ConsumerSettings", "KafkaSettings",
           "LiveAuditor", "LiveConfig", "PartitionVerdicts", "Topics", "finding_id"]
