"""Files from storage as responses: a file the database names but storage lost is a 404 that says so, not a 500.
An object store's file is passed on as it arrives (webapp.selectors.stored)."""
from django.db.models.fields.files import FieldFile
from django.http import FileResponse
from rest_framework.exceptions import NotFound

from webapp.selectors.stored import open_stored


def stored_file(field_file: FieldFile, **response) -> FileResponse:
    try:
        handle = open_stored(field_file)
    except (FileNotFoundError, ValueError) as error:  # ValueError: the row names no file at all
        raise NotFound("the file is missing from storage; the run that made it may have been cleaned up") from error
    streamed = FileResponse(handle, **response)
    if getattr(handle, "size", None) is not None and not streamed.has_header("Content-Length"):
        streamed["Content-Length"] = str(handle.size)
    return streamed
