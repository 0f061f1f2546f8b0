"""Report targets (`bot.targets`): each door's kinds load back from what runs stored, rows of older
versions included, and a kind no door registers here is carried as it was, never dropped."""

from bot import targets
from bot.github.targets import PullRequestTarget
from bot.slack.targets import MessageTarget, Person, ReplyTarget


def test_stored_targets_load_back_as_their_doors_kinds():
    pull = PullRequestTarget(repository="acme/models", pull_request=7, installation=3, url="https://x/7")
    message = MessageTarget.of_pull_request("C1", pull.about())
    stored = targets.stored([pull, message])
    assert stored == [
        {
            "github": {
                "repository": "acme/models",
                "pull_request": 7,
                "installation": 3,
                "url": "https://x/7",
                "gating": True,
            }
        },
        {"slack": {"channel": "C1", "pull_request": "acme/models#7", "pull_url": "https://x/7"}},
    ]
    assert targets.loaded(stored) == [pull, message]


def test_a_row_of_an_older_version_loads_without_the_fields_it_no_longer_has():
    (pull,) = targets.loaded([{"github": {"repository": "acme/models", "pull_request": 7, "retired": 1}}])
    assert pull == PullRequestTarget(repository="acme/models", pull_request=7)
    assert pull.gating and pull.about().url is None


def test_a_kind_no_door_registers_or_a_broken_one_is_carried_as_it_was():
    stored = [{"carrier-pigeon": {"loft": "north"}}, {"slack": {"channel": "C1"}}, {"slack": {"chanel": 1}}]
    loaded = targets.loaded(stored)
    assert loaded[0].about() is None and loaded[1] == MessageTarget(channel="C1")
    assert targets.stored(loaded) == stored  # the broken one too: its door's syncer says what is wrong


def test_a_private_reply_keeps_the_address_of_who_asked():
    to = Person.of({"response_url": "https://hooks/1", "channel": "C1", "user": "U1", "text": "ignored"})
    reply = ReplyTarget(**to.model_dump(), text="done")
    assert reply.fields() == {
        "response_url": "https://hooks/1",
        "channel": "C1",
        "user": "U1",
        "text": "done",
        "response_type": "ephemeral",
    }
    assert ReplyTarget.model_validate(reply.fields()) == reply
