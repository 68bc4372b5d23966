//! The command-line interface a host embeds.
