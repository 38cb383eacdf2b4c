"""The ids the experiment list shows, in order: from the API's page and from the HTML page."""
import re


def api_ids(api, query="") -> list[int]:
    response = api.get(f"/api/experiments/?{query}")
    assert response.status_code == 200, response.content
    return [e["id"] for e in response.json()["results"]]


def page_ids(client, query="") -> list[int]:
    response = client.get(f"/experiments/?{query}")
    assert response.status_code == 200, response.content
    return [int(pk) for pk in re.findall(r'<tr data-id="(\d+)"', response.content.decode())]
