"""Text to speech: espeak-ng renders a text once, the disk keeps it.

`Speech.say(text, voice, rate)` returns the text spoken as mono linear PCM
(`switch.media.wav.Audio`) at 8 or 16 kHz, ready for the player. The first
time, it runs espeak-ng in a subprocess (asyncio: the event loop keeps
serving calls meanwhile), converts its 22.05 kHz output to the rate asked
for, and stores the result as a WAV file in the cache directory (normally
<node.data_dir>/tts). Every later time it reads that file: a prompt is
rendered once per node, not once per caller.

The cache file's name is a SHA-256 hash of everything that changes the
sound: the voice, the rate, the speaking speed, the text and espeak-ng's
version (an upgrade renders prompts again instead of mixing old and new).
Files are written to a temporary name and renamed, so a crash midway never
leaves half a prompt under a cache name. Callers asking for the same text
at the same time share one render.

Voices are espeak-ng's names: "en" (English), "en-us", "cmn" (Mandarin
Chinese, in characters or pinyin), and any other `espeak-ng --voices`
lists. Texts are passed on standard input as UTF-8, never on the command
line, so nothing in a text can be taken for an option.

When espeak-ng is not installed, the error says so and how to install it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from pathlib import Path

from .wav import Audio, WavError, parse_wav, read_wav, resample, write_wav

TTS_RATES = (8000, 16000)
DEFAULT_SPEED = 160  # words per minute: a little slower than espeak's 175, for phones
RENDER_TIMEOUT = 60.0  # seconds: a long text takes a few seconds; more is a hang
MAX_TEXT = 5000  # characters: a prompt, not a book
_VOICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+\-/]*$")
_INSTALL = "espeak-ng is not installed: apt-get install espeak-ng"


class TtsError(RuntimeError):
    """Speech could not be rendered; the message says why and what to do."""


class Speech:
    """Renders and caches speech; one per node."""

    def __init__(self, cache_dir: str | Path, executable: str = "espeak-ng") -> None:
        self.cache_dir = Path(cache_dir)
        self.executable = executable
        self.renders = 0  # times espeak-ng was run to speak (not to ask its version)
        self._version: str | None = None
        self._pending: dict[Path, asyncio.Future[Audio]] = {}

    async def version(self) -> str:
        """espeak-ng's version line, asked once."""
        if self._version is None:
            out, _ = await self._run("--version")
            self._version = out.decode("utf-8", "replace").strip()
        return self._version

    async def cache_path(
        self, text: str, voice: str = "en", rate: int = 8000, speed: int = DEFAULT_SPEED
    ) -> Path:
        """Where the speech of this text is (or will be) cached."""
        key = json.dumps([voice, rate, speed, text, await self.version()], ensure_ascii=False)
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.cache_dir / f"{digest}.wav"

    async def say(
        self, text: str, voice: str = "en", rate: int = 8000, speed: int = DEFAULT_SPEED
    ) -> Audio:
        """`text` spoken by `voice`, as mono linear PCM at `rate`."""
        text = text.strip()
        if not text:
            raise TtsError("nothing to say: the text is empty")
        if len(text) > MAX_TEXT:
            raise TtsError(
                f"the text is {len(text)} characters long: at most {MAX_TEXT} are spoken; "
                "split it into several prompts or record it as a WAV file"
            )
        if not _VOICE.match(voice):
            raise TtsError(f"{voice!r} is not a voice name: use one of espeak-ng --voices")
        if rate not in TTS_RATES:
            raise TtsError(f"speech is rendered at 8000 or 16000 Hz, not {rate}")
        if not 80 <= speed <= 450:
            raise TtsError(f"speaking speed {speed} is out of range: 80 to 450 words a minute")
        path = await self.cache_path(text, voice, rate, speed)
        while (pending := self._pending.get(path)) is not None:
            # The same speech is being rendered right now: wait for it.
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                # The render was cancelled with its first caller: try again.
        try:
            return read_wav(path)
        except WavError:
            pass  # not cached yet (or damaged: render it again)
        future: asyncio.Future[Audio] = asyncio.get_running_loop().create_future()
        self._pending[path] = future
        try:
            audio = await self._render(text, voice, rate, speed, path)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning if nobody waits
            raise
        except BaseException:  # cancelled: those waiting for it try again themselves
            future.cancel()
            raise
        finally:
            del self._pending[path]
        future.set_result(audio)
        return audio

    async def _render(self, text: str, voice: str, rate: int, speed: int, path: Path) -> Audio:
        self.renders += 1
        # -b 1: the input is UTF-8 (Mandarin); --stdout: the WAV on standard output.
        out, _ = await self._run(
            "-v", voice, "-s", str(speed), "-b", "1", "--stdin", "--stdout", stdin=text.encode()
        )
        try:
            spoken = parse_wav(out, "espeak-ng-output.wav", any_rate=True)
        except WavError as exc:
            raise TtsError(str(exc)) from exc
        if not spoken.pcm:
            raise TtsError(f"espeak-ng said nothing for this text with voice {voice!r}")
        audio = Audio(resample(spoken.pcm, spoken.rate, rate), rate)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            write_wav(path, audio)  # temporary file + rename
        except OSError as exc:
            raise TtsError(
                f"cannot write the speech cache {self.cache_dir}: {exc.strerror or exc}; "
                "check that node.data_dir is writable by the switch"
            ) from exc
        return audio

    async def _run(self, *args: str, stdin: bytes | None = None) -> tuple[bytes, bytes]:
        try:
            proc = await asyncio.create_subprocess_exec(
                self.executable,
                *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            raise TtsError(f"{_INSTALL} (no {self.executable} on PATH)") from exc
        except PermissionError as exc:
            raise TtsError(f"cannot run {self.executable}: {exc.strerror}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), RENDER_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if proc.returncode != 0:
            reason = err.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
            raise TtsError(f"espeak-ng failed ({' '.join(args[:2])}): {reason}")
        return out, err


def cache_dir(data_dir: str | os.PathLike[str]) -> Path:
    """The speech cache of a node whose data directory is `data_dir`."""
    return Path(data_dir) / "tts"
