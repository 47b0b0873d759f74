//! Layout codec (being built).
