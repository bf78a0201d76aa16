"""burst's public API for plugins.  Providers, federations, backlog sources and policies import
from here (or the modules it names) and never from burst's internals."""

from burst.backlog.api import BacklogConfig, BacklogContext, BacklogSource
from burst.clock import Clock, RealClock, SimClock
from burst.errors import (
    AuthFailed,
    BacklogUnavailable,
    BurstError,
    CapacityUnavailable,
    ConfigError,
    FederationError,
    NotFound,
    ProviderError,
    ProvisioningFailed,
    QuotaExceeded,
    Throttled,
    is_fallback,
)
from burst.federation.api import Federation, FederationConfig, FederationContext, JoinStatus
from burst.lifecycle import ClusterRecord, ClusterState
from burst.model import (
    CAMPAIGN_TAG,
    CLUSTER_TAG,
    OWNER_TAG,
    Bucket,
    CloudCluster,
    CloudStatus,
    ClusterSpec,
    Demand,
    LatencyModel,
    Offering,
    Quota,
    Shape,
)
from burst.policy import (
    CapacityPolicy,
    Decision,
    ForcedDrain,
    Limited,
    LimitPolicy,
    Placement,
    PolicyConfig,
    PolicyInput,
    ProviderLimits,
    Spend,
    Target,
    Want,
)
from burst.provider import PriceOverride, Provider, ProviderConfig, ProviderContext
from burst.units import Duration, Money, MoneyField, parse_duration, parse_money

__all__ = [
    "CAMPAIGN_TAG", "CLUSTER_TAG", "OWNER_TAG", "AuthFailed", "BacklogConfig", "BacklogContext",
    "BacklogSource", "BacklogUnavailable", "Bucket", "BurstError", "CapacityPolicy",
    "CapacityUnavailable", "Clock", "CloudCluster", "CloudStatus", "ClusterRecord", "ClusterSpec",
    "ClusterState", "ConfigError", "Decision", "Demand", "Duration", "Federation", "FederationConfig",
    "FederationContext", "FederationError", "ForcedDrain", "JoinStatus", "LatencyModel", "LimitPolicy",
    "Limited", "Money", "MoneyField", "NotFound", "Offering", "Placement", "PolicyConfig", "PolicyInput",
    "PriceOverride", "Provider", "ProviderConfig", "ProviderContext", "ProviderError", "ProviderLimits",
    "ProvisioningFailed", "Quota", "QuotaExceeded", "RealClock", "Shape", "SimClock", "Spend", "Target",
    "Throttled", "Want", "is_fallback", "parse_duration", "parse_money",
]
