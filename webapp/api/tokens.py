"""POST /api/auth/token/ (a new token for a username and password) and POST /api/auth/token/revoke/ (this one).

Tokens are django-rest-knox's: only a hash of each is stored, each expires (SLIMFORGE_TOKEN_DAYS), and a user can
have several (one per script or machine) and revoke each. Token requests are rate-limited with the logins
(django-axes, see webapp.settings).
"""
from django.core.exceptions import ValidationError
from knox.models import AuthToken
from rest_framework import status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api import schema
from webapp.services import tokens


class TokenCreate(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @schema.token_create
    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        try:
            instance, token = tokens.token_create(user=serializer.validated_data["user"])
        except ValidationError as exc:
            return Response({"detail": exc.messages[0]}, status=status.HTTP_409_CONFLICT)
        return Response({"token": token, "expiry": instance.expiry}, status=status.HTTP_200_OK)


class TokenRevoke(APIView):
    @schema.token_revoke
    def post(self, request):
        if not isinstance(request.auth, AuthToken):
            return Response({"detail": "Revoke a token with that token (Authorization: Token …), not a session."},
                            status=status.HTTP_400_BAD_REQUEST)
        request.auth.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
