"""Local stand-ins for the control planes that cannot run here (Kubernetes API and KubeRay operator,
Vertex AI, SageMaker). Each speaks the real wire format to the real client library and runs the
workload as local processes on a real Ray; the tests of the container backends use them."""
