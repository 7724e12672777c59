"""`keras_trust.video`: a failed recording raises one clear error and leaves nothing behind
(the success path, frame by frame, is `tests/test_cli.py`'s video test)."""

import pytest

import keras_trust as kt
from keras_trust.video import VideoError, evaluate_with_video


def test_unrecordable_env_raises_video_error_and_leaves_no_files(tmp_path):
    out = tmp_path / "clips" / "run.mp4"
    with pytest.raises(VideoError, match="could not record NoSuchEnv-v0: .*NoSuchEnv"):
        evaluate_with_video(kt.PPO(), "NoSuchEnv-v0", str(out), episodes=1)
    assert list((tmp_path / "clips").iterdir()) == []
