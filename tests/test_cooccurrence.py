import pytest
import torch

from hl.heads.cooccurrence import MODELS, CooccurrenceConfig, CooccurrenceHead, segment_positions

DV, DA = 6, 5


def make(model="co-av", seed=0, **kw):
    torch.manual_seed(seed)
    cfg = CooccurrenceConfig(model=model, d_model=16, n_heads=2, ffn_dim=24, **kw)
    return CooccurrenceHead(DV, DA, cfg).eval()


def inputs(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, t = len(lengths), max(lengths)
    mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]
    visual = torch.randn(b, t, DV, generator=g) * mask[..., None]
    audio = torch.randn(b, t, DA, generator=g) * mask[..., None]
    return visual, mask, audio


@pytest.mark.parametrize("model", MODELS)
def test_output_shapes(model):
    head = make(model)
    visual, mask, audio = inputs([7, 4])
    out = head(visual, mask, audio)
    assert out.logits.shape == (2, 7)
    emb_dim = 32 if model in ("co-av", "cr-av") else 16
    assert out.embedding.shape == (2, 7, emb_dim)
    expected_streams = ["visual", "audio", "cooccurrence"] if model in ("co-av", "cr-av") else ["single"]
    assert list(out.stream_logits) == expected_streams
    for name, s in out.stream_logits.items():
        assert s.shape == (2, 7) and out.stream_masks[name].shape == (2, 7)
        assert torch.isfinite(s).all()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("global_query", ["mean", "random", "none"])
def test_scores_do_not_depend_on_padding_or_batch_mates(model, global_query):
    head = make(model, global_query=global_query)
    visual, mask, audio = inputs([5, 11])
    alone = head(visual[:1, :5], mask[:1, :5], audio[:1, :5])
    batched = head(visual, mask, audio)
    torch.testing.assert_close(batched.logits[0, :5], alone.logits[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched.embedding[0, :5], alone.embedding[0], atol=1e-5, rtol=1e-5)
    # garbage in the padded positions changes nothing either
    noisy_v = visual.clone()
    noisy_a = audio.clone()
    noisy_v[0, 5:] = 1e3
    noisy_a[0, 5:] = -1e3
    again = head(noisy_v, mask, noisy_a)
    torch.testing.assert_close(again.logits[0, :5], batched.logits[0, :5], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positional", ["index", "relative"])
def test_positional_codes_keep_padding_invariance_and_order_matters(positional):
    head = make(positional=positional)
    visual, mask, audio = inputs([5, 9])
    alone = head(visual[:1, :5], mask[:1, :5], audio[:1, :5]).logits
    torch.testing.assert_close(head(visual, mask, audio).logits[0, :5], alone[0], atol=1e-5, rtol=1e-5)
    # with a position code, reversing the video is not just reversing the scores
    rev = head(visual[:1, :5].flip(1), mask[:1, :5], audio[:1, :5].flip(1)).logits
    assert not torch.allclose(rev.flip(1), alone, atol=1e-4)
    # without one, the encoder is permutation-equivariant
    plain = make()
    base = plain(visual[:1, :5], mask[:1, :5], audio[:1, :5]).logits
    rev = plain(visual[:1, :5].flip(1), mask[:1, :5], audio[:1, :5].flip(1)).logits
    torch.testing.assert_close(rev.flip(1), base, atol=1e-5, rtol=1e-5)


def test_relative_positions_run_from_0_to_100_in_each_video():
    mask = torch.tensor([[True] * 3 + [False] * 2, [True] * 5, [True] + [False] * 4])
    pos = segment_positions(mask, "relative")
    torch.testing.assert_close(pos[0, :3], torch.tensor([0.0, 50.0, 100.0]))
    torch.testing.assert_close(pos[1], torch.tensor([0.0, 25.0, 50.0, 75.0, 100.0]))
    assert pos[2, 0] == 0.0
    torch.testing.assert_close(segment_positions(mask, "index")[0], torch.arange(5.0))


def test_late_fusion_is_the_weighted_mean_of_the_three_scores():
    head = make(fusion_weights=(1.0, 0.5, 2.0))
    visual, mask, audio = inputs([6, 6])
    out = head(visual, mask, audio)
    s = out.stream_logits
    expect = (1.0 * s["visual"] + 0.5 * s["audio"] + 2.0 * s["cooccurrence"]) / 3.5
    torch.testing.assert_close(out.logits, expect)


def test_early_fusion_scores_with_one_classifier_on_all_features():
    head = make(fusion="early")
    assert head.cooc_classifier.in_features == 4 * 16
    visual, mask, audio = inputs([6, 3])
    out = head(visual, mask, audio)
    torch.testing.assert_close(out.logits, out.stream_logits["cooccurrence"])


def test_missing_audio_is_masked_not_a_crash():
    head = make()
    visual, mask, audio = inputs([6, 8])
    has_audio = torch.tensor([True, False])
    out = head(visual, mask, audio, has_audio)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.embedding).all()
    assert not out.stream_masks["audio"][1].any() and out.stream_masks["audio"][0, :6].all()
    # the second video's audio values are never looked at ...
    other = audio.clone()
    other[1] = torch.randn_like(other[1]) * 50
    torch.testing.assert_close(head(visual, mask, other, has_audio).logits, out.logits)
    # ... its fused score leaves out the audio classifier ...
    s = out.stream_logits
    torch.testing.assert_close(out.logits[1], (s["visual"][1] + s["cooccurrence"][1]) / 2)
    # ... and it scores as if given zeros with a false mask, or no audio at all
    zeros = audio.clone()
    zeros[1] = 0
    torch.testing.assert_close(head(visual, mask, zeros, has_audio).logits, out.logits)
    none = head(visual[1:], mask[1:], None)
    torch.testing.assert_close(none.logits[0, :8], out.logits[1, :8], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", ["co-av", "cr-av", "a"])
def test_missing_audio_keeps_gradients_finite(model):
    head = make(model).train()
    visual, mask, audio = inputs([4, 4])
    out = head(visual, mask, audio, torch.tensor([False, False]))
    (out.logits.sum() + out.embedding.sum()).backward()
    for p in head.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


def test_per_segment_audio_mask_hides_the_masked_segments_from_the_visual_stream():
    head = make("cr-av")
    visual, mask, audio = inputs([6])
    audio_mask = torch.tensor([[True, True, True, False, False, False]])
    out = head(visual, mask, audio, audio_mask)
    other = audio.clone()
    other[0, 3:] = 7.0
    changed = head(visual, mask, other, audio_mask)
    torch.testing.assert_close(changed.stream_logits["visual"], out.stream_logits["visual"])
    torch.testing.assert_close(changed.embedding[..., :16], out.embedding[..., :16])


def test_each_variant_reads_the_modalities_it_should():
    visual, mask, audio = inputs([6])
    for model, reads_v, reads_a in [
        ("v", True, False), ("a", False, True), ("av", True, True), ("co-av", True, True), ("cr-av", True, True)
    ]:
        head = make(model)
        base = head(visual, mask, audio).logits
        moved_v = head(visual + torch.randn_like(visual), mask, audio).logits
        moved_a = head(visual, mask, audio + torch.randn_like(audio)).logits
        assert (not torch.allclose(base, moved_v)) == reads_v, model
        assert (not torch.allclose(base, moved_a)) == reads_a, model
    assert make("a")(None, mask, audio).logits.shape == (1, 6)


def test_cooccurrence_attends_over_both_modalities_and_cross_attention_over_the_other_only():
    visual, mask, audio = inputs([6])
    for model, visual_reads_visual_keys in [("co-av", True), ("cr-av", False)]:
        head = make(model)
        f_v = head.visual(visual, mask)
        f_a = head.audio(audio, mask)
        seen = {}

        def grab(module, args, output, seen=seen):
            seen["memory"] = args[1]

        handle = head.visual_cross.attn.register_forward_hook(grab)
        head(visual, mask, audio)
        handle.remove()
        expect = torch.cat([f_v, f_a], dim=1) if visual_reads_visual_keys else f_a
        torch.testing.assert_close(seen["memory"], expect)


def test_global_query_mean_and_none_differ_and_random_is_a_parameter():
    visual, mask, audio = inputs([6])
    assert not hasattr(make(global_query="none").visual, "global_decoder")
    assert isinstance(make(global_query="random").visual.g_init, torch.nn.Parameter)
    assert not torch.allclose(
        make(global_query="mean")(visual, mask, audio).logits, make(global_query="none")(visual, mask, audio).logits
    )


def test_bad_configs_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="model must be one of"):
        CooccurrenceConfig(model="xy")
    with pytest.raises(ValueError, match="global_query"):
        CooccurrenceConfig(global_query="max")
    with pytest.raises(ValueError, match="positional"):
        CooccurrenceConfig(positional="learned")
    with pytest.raises(ValueError, match="fusion must be"):
        CooccurrenceConfig(fusion="middle")
    with pytest.raises(ValueError, match="multiple of n_heads"):
        CooccurrenceConfig(d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="fusion_weights"):
        CooccurrenceConfig(fusion_weights=(1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="needs audio"):
        CooccurrenceHead(DV, 0, CooccurrenceConfig())
    head = make()
    visual, mask, audio = inputs([6])
    with pytest.raises(ValueError, match="visual must be"):
        head(visual[..., :3], mask, audio)
    with pytest.raises(ValueError, match="audio must be"):
        head(visual, mask, audio[:, :4])
    with pytest.raises(ValueError, match="audio_mask must be"):
        head(visual, mask, audio, torch.ones(1, 3, dtype=torch.bool))
