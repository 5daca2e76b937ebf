"""Request and response bodies of accounts and console sessions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.accounts import MAX_PASSWORD

AccountRole = Literal["viewer", "operator", "admin"]
# Login takes any text up to these lengths (a name that cannot exist is just a wrong
# login, answered like any other); only what an admin sets is held to the rules.
LOGIN_NAME_MAX = 256
LOGIN_PASSWORD_MAX = 1024


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=LOGIN_NAME_MAX)
    password: str = Field(min_length=1, max_length=LOGIN_PASSWORD_MAX)


class SessionOut(BaseModel):
    name: str
    role: AccountRole
    via: Literal["session"] = "session"
    idle_s: int = Field(description="The session ends after this many seconds unused …")
    max_s: int = Field(description="… and this many seconds after the login at the latest.")


class AccountIn(BaseModel):
    name: str = Field(min_length=2, max_length=32, description="a-z first, then a-z 0-9 . _ -")
    role: AccountRole = "viewer"
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class PasswordIn(BaseModel):
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class OwnPasswordIn(BaseModel):
    current: str = Field(min_length=1, max_length=LOGIN_PASSWORD_MAX)
    new: str = Field(min_length=1, max_length=MAX_PASSWORD)


class AccountOut(BaseModel):
    name: str
    role: AccountRole
    disabled: bool
    created_ms: int
    password_changed_ms: int
