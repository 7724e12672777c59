"""Recording an evaluation to a video file (`keras-trust evaluate --video`).

The first episode's frames (the reset frame, then one per step) are written to exactly one
MP4 file at the path the user named, or a clear `VideoError` is raised and nothing is left.

Why not gymnasium's `RecordVideo`: it encodes through moviepy's `ImageSequenceClip`, which
derives its frame times from `n_frames / fps` in floating point and so drops the last
frame for some episode lengths (11 or 251 frames at 50 fps come out one short). The frames
go straight to ffmpeg here (`imageio-ffmpeg`, which also ships the ffmpeg binary), one
encoded frame per rendered frame.
"""

import os
import shutil
import tempfile

import gymnasium as gym
import numpy as np


class VideoError(RuntimeError):
    """The env could not be recorded (a missing renderer, no frames, an unwritable path)."""


class FirstEpisodeRecorder(gym.Wrapper):
    """Keeps the rendered frames of the first episode; `frames` is final once `done`."""

    def __init__(self, env):
        super().__init__(env)
        self.frames = []
        self.done = False
        self._episodes = 0

    def _capture(self):
        frame = self.env.render()
        if isinstance(frame, list):  # render modes that return a history keep the last
            frame = frame[-1] if frame else None
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            raise VideoError(
                f"the env's render() gave {type(frame).__name__}, not an RGB frame "
                "(is it made with render_mode='rgb_array'?)"
            )
        self.frames.append(np.asarray(frame, dtype=np.uint8))

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self._episodes += 1
        if self._episodes == 1:
            self._capture()
        else:
            self.done = True  # an episode cut short by a reset still counts as the first
        return out

    def step(self, action):
        out = self.env.step(action)
        if self._episodes == 1 and not self.done:
            self._capture()
            if out[2] or out[3]:
                self.done = True
        return out


def write_mp4(frames, path, fps):
    """Encode `frames` (equal-shape uint8 RGB arrays) to the MP4 `path`, one frame each."""
    import imageio_ffmpeg

    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(
        path,
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=1,  # keep the env's own size (no padding to multiples of 16)
        # yuv420p needs even sides: ffmpeg pads an odd side by one pixel.
        output_params=["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"],
        ffmpeg_log_level="error",
    )
    writer.send(None)  # start the ffmpeg process
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame[..., :3]))
    finally:
        writer.close()


def evaluate_with_video(agent, env_id, path, episodes, seed=None):
    """`agent.evaluate` over `episodes`, the first episode recorded to the mp4 `path`.

    Returns `agent.evaluate`'s result; raises `VideoError` naming the cause when the
    video cannot be recorded (nothing is left at `path` or beside it then).
    """
    out = os.path.abspath(path)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    folder = tempfile.mkdtemp(prefix=".video-", dir=os.path.dirname(out))
    env = None
    try:
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError as e:
            raise VideoError(
                "imageio-ffmpeg is not installed (pip install 'keras-trust[video]')"
            ) from e
        env = FirstEpisodeRecorder(gym.make(env_id, render_mode="rgb_array"))
        result = agent.evaluate(env, episodes=episodes, seed=seed)
        if not env.frames:
            raise VideoError("the env rendered no frames")
        fps = env.metadata.get("render_fps") or 30
        partial = os.path.join(folder, "video.mp4")
        write_mp4(env.frames, partial, fps)
        os.replace(partial, out)
    except VideoError as e:  # raised without the env's name, which is known only here
        raise VideoError(f"could not record {env_id}: {e}") from e
    except (gym.error.Error, ImportError, OSError, RuntimeError, AttributeError) as e:
        raise VideoError(f"could not record {env_id}: {type(e).__name__}: {e}") from e
    finally:
        if env is not None:
            try:
                env.close()
            except Exception:  # a renderer that failed may fail again while closing
                pass
        shutil.rmtree(folder, ignore_errors=True)
    return result
