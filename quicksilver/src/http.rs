//! The HTTP router: the status endpoint, for a host to nest at a path of
//! its choice.
