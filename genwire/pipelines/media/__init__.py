"""Media building blocks for the demo pipelines, one concern per module.

- `inputs`: input fields shared by the demo pipelines (the prompt).
- `scenes`: a prompt and a duration become timed, captioned scenes.
- `speech`: text to 16-bit mono PCM with eSpeak NG.
- `audio`: speech clips placed on a silent timeline, written as WAV.
- `subtitles`: SRT cues.
- `art`: procedural pictures seeded from the prompt.
- `captions`: legible caption bands drawn over a picture.
- `motion`: a Ken Burns camera over keyframes, frame by frame.
- `ffmpeg`: the ffmpeg binary as an async subprocess that encodes piped frames.
"""
