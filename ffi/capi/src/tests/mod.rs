//! Tests of the exports, called as C calls them.
