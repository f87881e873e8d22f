"""Platform clients: the only code in Chorus that talks to social platforms.

Each module implements `PlatformClient` for one platform with its documented request and
response shapes, media upload flow, error mapping (transient / permanent / auth) and
rate-limit headers. Base URLs come from configuration, so the same client talks to the
real platform or to the sandbox.
"""
