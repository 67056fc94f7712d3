"""Voice: speech to text (faster-whisper), text to speech (edge-tts) and voice transports.

Nothing here imports lightbulb: the CLI uses these directly.
"""
