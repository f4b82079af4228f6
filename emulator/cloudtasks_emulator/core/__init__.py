"""The semantic core: rules, store, service and dispatcher. Protocol adapters only translate to it."""
