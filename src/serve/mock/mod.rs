//! A scripted OpenAI-compatible server on loopback (being written).
