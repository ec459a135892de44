"""The loop-block benchmark runs both paths on the same records and compares what they
stored: a sliced batch must store exactly what the batch scored at once stores."""

from __future__ import annotations

from benchmarks.loop_blocks import compare
from benchmarks.worker_cpu import bench_records
from stream_app.worker import batching, scoring


def test_both_paths_store_the_same_points_and_the_slice_is_put_back() -> None:
    records = bench_records(1_200, 40)
    before = batching.SCORE_SLICE, scoring.JUDGE_SLICE
    result = compare(records, 1, 2_000, timeout_s=60.0)
    assert result["same_points"]
    assert before == (batching.SCORE_SLICE, scoring.JUDGE_SLICE)  # put back
    assert set(result) >= {"sliced", "whole", "ratio_sliced_to_whole"}
