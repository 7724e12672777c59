"""`keras_trust.video`: one MP4 frame per rendered frame, checked by decoding the file
independently (ffmpeg through imageio-ffmpeg); a failed recording raises one clear error and
leaves nothing behind. (The command's `--video` flag is `tests/test_cli.py`'s video test.)"""

import gymnasium as gym
import numpy as np
import pytest

import keras_trust as kt
from keras_trust.video import FirstEpisodeRecorder, VideoError, evaluate_with_video, write_mp4

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")


def _decode(path):
    """Every frame of the file, as uint8 RGB arrays, by ffmpeg's own decoder."""
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = reader.__next__()
    width, height = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(height, width, 3) for b in reader]
    return frames, (width, height)


@pytest.mark.parametrize("n", [11, 251])  # lengths moviepy's ImageSequenceClip cuts short
def test_write_mp4_keeps_every_frame_in_order(tmp_path, n):
    # Frame i shows its index in two grey panels, 8 levels apart per unit: i % 30 on the
    # left, i // 30 on the right, on a 33 x 20 canvas with one odd side.
    frames = []
    for i in range(n):
        frame = np.zeros((20, 33, 3), np.uint8)
        frame[:, :16] = 8 * (i % 30) + 4
        frame[:, 16:] = 8 * (i // 30) + 4
        frames.append(frame)
    write_mp4(frames, str(tmp_path / "v.mp4"), fps=50)
    decoded, size = _decode(tmp_path / "v.mp4")
    assert len(decoded) == n
    assert size in ((33, 20), (34, 20))  # yuv420p pads an odd side by one pixel
    # Lossy, but well within half a unit: each decoded frame reads back its own index.
    left = np.array([f[4:16, 2:14].mean() for f in decoded])
    right = np.array([f[4:16, 19:31].mean() for f in decoded])
    assert np.max(np.abs(left - (8 * (np.arange(n) % 30) + 4))) < 3
    assert np.max(np.abs(right - (8 * (np.arange(n) // 30) + 4))) < 3


def test_recorder_keeps_the_reset_frame_and_one_per_step_of_the_first_episode():
    env = FirstEpisodeRecorder(gym.make("CartPole-v1", render_mode="rgb_array"))
    env.reset(seed=0)
    steps = 0
    while True:
        steps += 1
        _, _, terminated, truncated, _ = env.step(steps % 2)
        if terminated or truncated:
            break
    assert env.done and len(env.frames) == steps + 1
    env.reset(seed=1)
    env.step(0)
    assert len(env.frames) == steps + 1  # later episodes are not kept
    assert env.frames[0].shape == (400, 600, 3)
    env.close()


def test_video_of_the_first_episode_matches_a_replay_of_it(tmp_path, cartpole_ppo):
    pytest.importorskip("pygame")  # CartPole's rgb_array renderer
    out = tmp_path / "clips" / "run.mp4"
    result = evaluate_with_video(cartpole_ppo, "CartPole-v1", str(out), episodes=2, seed=3)
    # The same episode stepped here: the first reset is seeded with `seed`.
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    obs, _ = env.reset(seed=3)
    replay = [env.render()]
    while True:
        obs, _, terminated, truncated, _ = env.step(cartpole_ppo.predict(obs, deterministic=True))
        replay.append(env.render())
        if terminated or truncated:
            break
    env.close()
    assert len(replay) - 1 == result["lengths"][0]
    decoded, size = _decode(out)
    assert size == (600, 400) and len(decoded) == len(replay)
    # Lossy H.264: under 0.2% of any frame's pixels more than 40 levels off its replay.
    # (Consecutive CartPole frames can be this close too: the order of the frames is
    # checked on distinct frames in the test above.)
    for d, r in zip(decoded, replay):
        assert np.mean(np.abs(d.astype(int) - r).max(axis=2) > 40) < 0.002
    assert [p.name for p in out.parent.iterdir()] == ["run.mp4"]  # no leftovers


def test_unrecordable_env_raises_video_error_and_leaves_no_files(tmp_path):
    out = tmp_path / "clips" / "run.mp4"
    with pytest.raises(VideoError, match="could not record NoSuchEnv-v0: .*NoSuchEnv"):
        evaluate_with_video(kt.PPO(), "NoSuchEnv-v0", str(out), episodes=1)
    assert list((tmp_path / "clips").iterdir()) == []


def test_env_without_rgb_frames_raises_video_error(tmp_path, cartpole_ppo):
    gym.register("kt-test/NoFrames-v0", lambda render_mode=None: _NoFrames())
    out = tmp_path / "run.mp4"
    with pytest.raises(VideoError, match="could not record kt-test/NoFrames-v0: .*not an RGB"):
        evaluate_with_video(cartpole_ppo, "kt-test/NoFrames-v0", str(out), 1)
    assert list(tmp_path.iterdir()) == []


class _NoFrames(gym.Wrapper):
    """CartPole whose render() returns None, as an env without an rgb_array mode does."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))

    def render(self):
        return None
