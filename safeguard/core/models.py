"""Shared model bases. The core app owns no domain models."""

import uuid

from django.db import models


class BaseModel(models.Model):
    """Every table records when a row was made and last changed."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class PublicIdModel(BaseModel):
    """A model whose public identifier is a UUID; the integer key stays internal."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    class Meta:
        abstract = True
