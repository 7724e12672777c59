"""Recording an evaluation to a video file (`keras-trust evaluate --video`).

Gymnasium's `RecordVideo` writes a folder of clips named after its own scheme, keeps the
frames of an episode in memory until it ends, and can fail late (at render or at close)
when the env lacks its rendering dependencies. This wraps it so the user gets exactly one
file at the path they named, or a clear error and no leftovers.
"""

import os
import shutil
import tempfile
import warnings


class VideoError(RuntimeError):
    """The env could not be recorded (a missing renderer, no frames, an unwritable path)."""


def evaluate_with_video(agent, env_id, path, episodes, seed=None):
    """`agent.evaluate` over `episodes`, the first episode recorded to the mp4 `path`.

    Returns `agent.evaluate`'s result; raises `VideoError` naming the cause when the
    video cannot be recorded (nothing is left at `path` or beside it then).
    """
    import gymnasium as gym

    out = os.path.abspath(path)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    folder = tempfile.mkdtemp(prefix=".video-", dir=os.path.dirname(out))
    env = None
    try:
        env = gym.make(env_id, render_mode="rgb_array")
        # The first episode only: frames are held in memory until the episode ends.
        env = gym.wrappers.RecordVideo(
            env,
            video_folder=os.path.join(folder, "v"),
            name_prefix="video",
            episode_trigger=lambda k: k == 0,
        )
        result = agent.evaluate(env, episodes=episodes, seed=seed)
        env.close()
        env = None
        videos = sorted(
            os.path.join(root, f)
            for root, _, files in os.walk(folder)
            for f in files
            if f.endswith(".mp4")
        )
        if not videos:
            raise VideoError(
                f"could not record {env_id}: the recorder wrote no video (the env rendered "
                "no frames)"
            )
        os.replace(videos[0], out)
    except VideoError:
        raise
    except (gym.error.Error, ImportError, OSError, RuntimeError, AttributeError) as e:
        raise VideoError(f"could not record {env_id}: {type(e).__name__}: {e}") from e
    finally:
        if env is not None:
            with warnings.catch_warnings():  # "zero frames to save" after a failed render
                warnings.simplefilter("ignore")
                try:
                    env.close()
                except Exception:  # the recorder may fail again while closing
                    pass
        shutil.rmtree(folder, ignore_errors=True)
    return result
