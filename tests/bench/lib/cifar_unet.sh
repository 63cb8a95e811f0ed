# Sourced by the bench scripts: cifar_unet DIR makes DIR a diffusers folder of the
# google/ddpm-cifar10-32 shape (config.json, scheduler_config.json) with the closed-form
# weights that `ddpm-sample --closed-form --save-dir` writes (timing does not depend on the
# values; cmp_outputs.sh compares what they give). Needs ddpm-sample on PATH.
cifar_unet() {
	mkdir -p "$1" || return 1
	cat > "$1/config.json" <<'JSON'
{"_class_name": "UNet2DModel", "attention_head_dim": null, "block_out_channels": [128, 256, 256, 256],
 "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
 "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1, "layers_per_block": 2,
 "norm_eps": 1e-06, "norm_num_groups": 32, "sample_size": 32,
 "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]}
JSON
	cat > "$1/scheduler_config.json" <<'JSON'
{"_class_name": "DDPMScheduler", "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001,
 "clip_sample": true, "num_train_timesteps": 1000, "variance_type": "fixed_large"}
JSON
	ddpm-sample --model "$1" --closed-form --save-dir "$1"
}
