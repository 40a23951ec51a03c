"""The runtime on Ray: the driver of a flow body, checkpoint attempts as Ray tasks, and the runtime actor."""
