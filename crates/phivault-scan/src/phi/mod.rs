//! PHI discovery in files (being written).
