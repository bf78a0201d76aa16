"""Federation plugins: kubefed, Karmada, the HTCondor pool, and the simulated ``local`` one."""

from burst.federation.api import Federation, FederationConfig, FederationContext, JoinStatus

__all__ = ["Federation", "FederationConfig", "FederationContext", "JoinStatus"]
