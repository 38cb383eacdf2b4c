"""Reading a stored file from the start to the end, whatever the storage.

From an object store the file is read as the body of one GET arrives: django-storages' own file object would first
copy the whole object to a temporary file (for a multi-gigabyte model, a long wait before the first byte and as much
disk on the web machine). Other storages open their files as usual."""
from django.db.models.fields.files import FieldFile


class ObjectBody:
    """The body of an object-store GET (botocore's StreamingBody) as a readable binary file; `size` in bytes."""

    def __init__(self, stored_object):
        got = stored_object.get()
        self._body, self.size = got["Body"], got["ContentLength"]

    def read(self, size: int = -1) -> bytes:
        return self._body.read(None if size is None or size < 0 else size)

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_stored(field_file: FieldFile):
    """A readable binary file of what `field_file` names, read once from its start. FileNotFoundError when storage
    lost it, ValueError when the row names no file."""
    if not field_file:
        raise ValueError(f"the {field_file.field.name} field names no file")
    # The storage's own open: FieldFile.open would also read an object store's file in full.
    handle = field_file.storage.open(field_file.name, "rb")
    stored_object = getattr(handle, "obj", None)  # an S3 object (django-storages' S3File), its existence checked
    if stored_object is None:
        return handle
    handle.close()
    return ObjectBody(stored_object)
