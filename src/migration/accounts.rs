//! Accounts: placeholder, being written.
