"""Models, adapters and servers: the backend protocol, the in-process backend, the adapter
registry and the LangChain chat model that always targets the current adapter."""
