/*
 * openai.h: the OpenAI-compatible routes of rosimd, answered in OpenAI's
 * conventions so that OpenAI clients (the official libraries, LangChain,
 * gateways, chat UIs) work unchanged:
 *
 *   POST /v1/embeddings    {"input": str | [str], "model"?, "encoding_format"?,
 *                           "dimensions"?, "user"?}
 *   GET  /v1/models        {"object":"list","data":[{"id","object":"model",
 *                           "created","owned_by"}]}
 *   GET  /v1/models/{id}   the model, or 404
 *
 * Errors on these routes are {"error":{"message","type","param","code"}}:
 * invalid requests are 400 (rosimd's 413, 415 and 422 become 400, which
 * every OpenAI client stops on at once instead of retrying), type
 * invalid_request_error, param the field at fault (null when none);
 * 401 authentication_error; 429 rate_limit_error and 503 server_error,
 * both with Retry-After.  code is rosimd's error code.
 */
#ifndef ROSIM_OPENAI_H
#define ROSIM_OPENAI_H

#include "api.h"

/* Answer the request when seg[0..n-1] (its decoded path) is an OpenAI
 * route, and return 1; else return 0 and leave rp alone. */
int openai_handle(struct app *a, const struct api_request *rq, char *seg[], int n,
                  struct api_reply *rp);

/* Give rp, a native error reply {"error":{"code","message"}}, OpenAI's
 * shape and status, with param (NULL: null) the field at fault.  Replies
 * under 400 are left alone. */
void openai_error(struct api_reply *rp, const char *param);

/* For errors made before the API runs (401, 413 in http.c): openai_error()
 * when path (raw, as received) is an OpenAI route, else nothing. */
void openai_error_for_path(const char *path, struct api_reply *rp);

#endif
