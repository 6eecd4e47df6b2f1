"""The Shackleton demo: a real Home Assistant with a throwaway configuration."""
