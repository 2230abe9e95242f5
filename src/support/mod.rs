//! The replication support matrix as data, with queries and validators.
