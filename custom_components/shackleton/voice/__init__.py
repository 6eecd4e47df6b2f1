"""Shackleton's voice engine: LiveKit Agents sessions that talk to a home.

Nothing here imports Home Assistant. The engine reaches the home only through the
`Home` protocol in `home.py`, so the same package runs inside HA's event loop or as an
external worker. Import it only after the voice packages are loaded (see
`voice_support.py`): its modules import livekit at the top.
"""
