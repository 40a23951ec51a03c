"""KubeRay support: the RayJob/RayCluster validator (CRD schema + the operator's own rules) and the RayJob body builder."""
