//! STUB: the CLI's catalog, learnt from the file itself.
