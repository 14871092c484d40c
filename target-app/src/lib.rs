//! target-app: the sample service.
