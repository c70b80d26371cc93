"""The source patch for Cosmos-Transfer1: a pure patch engine and the tree operations (check/apply/revert)."""
