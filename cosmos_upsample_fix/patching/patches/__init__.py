"""The source patches for Cosmos-Transfer1, shipped as package data."""
