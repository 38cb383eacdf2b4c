"""Files from storage as responses: a file the database names but storage lost is a 404 that says so, not a 500."""
from django.db.models.fields.files import FieldFile
from django.http import FileResponse
from rest_framework.exceptions import NotFound


def stored_file(field_file: FieldFile, **response) -> FileResponse:
    try:
        handle = field_file.open("rb")
    except (FileNotFoundError, ValueError) as error:  # ValueError: the row names no file at all
        raise NotFound("the file is missing from storage; the run that made it may have been cleaned up") from error
    return FileResponse(handle, **response)
