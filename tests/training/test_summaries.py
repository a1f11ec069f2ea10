"""Event files in an object store: parts past a size, and a failed upload that training survives."""
from tensorboardX import record_writer
from tensorboardX.proto import event_pb2

from idm_jax.training import summaries
from tests import tensorboard_events


def _records(path, steps) -> None:
  """TensorBoard events (one scalar each) through tensorboardX's record framing, into `path`
  (what its writer thread does with the file the factory opens)."""
  writer = record_writer.RecordWriter.__new__(record_writer.RecordWriter)
  writer._writer = path  # pylint: disable=protected-access
  for step in steps:
    event = event_pb2.Event(step=step, wall_time=1.0)
    event.summary.value.add(tag='loss', simple_value=float(step))
    writer.write(event.SerializeToString())
    path.flush()


def test_large_event_files_continue_in_parts_that_tensorboard_reads(tmp_path, monkeypatch):
  monkeypatch.setattr(summaries, '_PART_BYTES', 100)
  target = summaries._ObjectStoreFile(str(tmp_path / 'events.out.tfevents.1.host'))  # pylint: disable=protected-access
  _records(target, range(10))
  target.close()
  names = sorted(p.name for p in tmp_path.iterdir())
  assert names[0] == 'events.out.tfevents.1.host' and len(names) > 2
  assert all(n.startswith('events.out.tfevents.1.host.part') for n in names[1:])
  steps = [s for s, _ in tensorboard_events.scalars(tmp_path)['loss']]
  assert sorted(steps) == list(range(10))  # Every record once, across the parts.


def test_a_failed_upload_is_logged_and_written_at_the_next_flush(tmp_path, monkeypatch):
  target = summaries._ObjectStoreFile(str(tmp_path / 'events.out.tfevents.2.host'))  # pylint: disable=protected-access
  real = type(target._path).write_bytes  # pylint: disable=protected-access
  calls = []

  def flaky(self, data):
    calls.append(len(data))
    if len(calls) == 1:
      raise OSError('503 Service Unavailable')
    return real(self, data)

  monkeypatch.setattr(type(target._path), 'write_bytes', flaky)  # pylint: disable=protected-access
  _records(target, [1])  # The first flush fails and must not raise.
  assert not (tmp_path / 'events.out.tfevents.2.host').exists()
  _records(target, [2])
  target.close()
  assert sorted(s for s, _ in tensorboard_events.scalars(tmp_path)['loss']) == [1, 2]
