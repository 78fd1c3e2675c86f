"""The names of torch 2.13.0+cpu's public functions and Tensor methods that jitgrad does not
implement. Using one raises NotImplementedError naming it (an AttributeError too, so hasattr and
getattr with a default still answer "absent"), instead of a bare AttributeError, so a script stops
saying what is missing. ``python -m jitgrad._missing`` (torch installed) prints the lists anew.
"""

FUNCTIONS = frozenset("""
    abs_ acos_ acosh_ adaptive_avg_pool1d adaptive_max_pool1d addmv_ adjoint
    affine_grid_generator alias_copy alpha_dropout alpha_dropout_ angle arccos_ arccosh_ arcsin_
    arcsinh_ arctan_ arctanh_ as_strided as_strided_ as_strided_copy as_strided_scatter asarray
    asin_ asinh_ atan_ atanh_ autocast_decrement_nesting autocast_increment_nesting avg_pool1d
    bartlett_window batch_norm batch_norm_backward_elemt batch_norm_backward_reduce
    batch_norm_elemt batch_norm_gather_stats batch_norm_gather_stats_with_counts
    batch_norm_stats batch_norm_update_stats bilinear binary_cross_entropy_with_logits binomial
    blackman_window can_cast ccol_indices_copy ceil_ celu celu_ channel_shuffle
    choose_qparams_optimized clamp_ clamp_max_ clamp_min_ clear_autocast_cache clip_
    col_indices_copy complex cond conj conj_physical conj_physical_ constant_pad_nd conv1d
    conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d conv_transpose3d convolution cos_
    cosh_ cosine_embedding_loss crow_indices_copy ctc_loss cudnn_affine_grid_generator
    cudnn_batch_norm cudnn_convolution cudnn_convolution_add_relu cudnn_convolution_relu
    cudnn_convolution_transpose cudnn_grid_sampler cudnn_is_acceptable deg2rad_ dequantize
    detach detach_ detach_copy diagonal_copy diagonal_scatter digamma dropout dropout_ dsmm
    embedding embedding_bag embedding_renorm_ empty_permuted empty_quantized empty_strided erf_
    erfc_ erfinv exp2_ exp_ expand_copy expm1_ fake_quantize_per_channel_affine
    fake_quantize_per_tensor_affine fbgemm_linear_fp16_weight
    fbgemm_linear_fp16_weight_fp32_activation fbgemm_linear_int8_weight
    fbgemm_linear_int8_weight_fp32_activation fbgemm_linear_quantize_weight
    fbgemm_pack_gemm_matrix_fp16 fbgemm_pack_quantized_matrix feature_alpha_dropout
    feature_alpha_dropout_ feature_dropout feature_dropout_ fill fill_ fix fix_ floor_ fork
    frac_ frexp frobenius_norm from_file frombuffer fused_moving_avg_obs_fake_quant gcd gcd_
    geqrf ger get_autocast_cpu_dtype get_autocast_dtype get_autocast_gpu_dtype
    get_autocast_ipu_dtype get_autocast_xla_dtype get_deterministic_debug_mode get_device
    get_device_module get_num_interop_threads gradient grid_sampler grid_sampler_2d
    grid_sampler_3d group_norm gru gru_cell hamming_window hann_window hardshrink hash_tensor
    heaviside hinge_embedding_loss histogramdd hsmm hspmm i0 i0_ igamma igammac imag
    import_ir_module import_ir_module_from_buffer index_put_ index_reduce indices_copy
    init_num_threads instance_norm int_repr is_autocast_cache_enabled is_autocast_cpu_enabled
    is_autocast_enabled is_autocast_ipu_enabled is_autocast_xla_enabled is_complex is_conj
    is_distributed is_inference is_inference_mode_enabled is_neg is_nonzero is_same_size
    is_signed is_storage is_vulkan_available is_warn_always_enabled isreal istft kaiser_window
    kl_div layer_norm lcm lcm_ ldexp ldexp_ lgamma lobpcg log10_ log1p_ log2_ log_ logit_ lstm
    lstm_cell lu_solve lu_unpack margin_ranking_loss max_pool1d max_pool1d_with_indices
    max_pool2d max_pool3d merge_type_from_type_comment miopen_batch_norm miopen_convolution
    miopen_convolution_add_relu miopen_convolution_relu miopen_convolution_transpose
    miopen_ctc_loss miopen_depthwise_convolution miopen_rnn mkldnn_adaptive_avg_pool2d
    mkldnn_convolution mkldnn_linear_backward_weights mkldnn_max_pool2d mkldnn_max_pool3d
    mkldnn_rnn_layer mvlgamma nan_to_num_ narrow_copy native_batch_norm native_channel_shuffle
    native_dropout native_group_norm native_layer_norm native_norm neg_ negative_ nextafter
    nonzero_static norm_except_dim nuclear_norm orgqr ormqr parse_ir parse_schema
    parse_type_comment pdist permute_copy pixel_shuffle pixel_unshuffle poisson poisson_nll_loss
    polar polygamma prelu promote_types q_per_channel_axis q_per_channel_scales
    q_per_channel_zero_points q_scale q_zero_point quantize_per_channel quantize_per_tensor
    quantize_per_tensor_dynamic quantized_batch_norm quantized_gru_cell quantized_lstm_cell
    quantized_max_pool1d quantized_max_pool2d quantized_max_pool3d quantized_rnn_relu_cell
    quantized_rnn_tanh_cell rad2deg_ range real reciprocal_ relu_ renorm resize_as_
    resize_as_sparse_ resolve_conj resolve_neg result_type rms_norm rnn_relu rnn_relu_cell
    rnn_tanh rnn_tanh_cell round_ row_indices_copy row_stack rrelu rrelu_ rsqrt_ rsub saddmm
    scalar_tensor select_copy select_scatter selu selu_ set_autocast_cache_enabled
    set_autocast_cpu_dtype set_autocast_cpu_enabled set_autocast_dtype set_autocast_enabled
    set_autocast_gpu_dtype set_autocast_ipu_dtype set_autocast_ipu_enabled
    set_autocast_xla_dtype set_autocast_xla_enabled set_deterministic_debug_mode
    set_flush_denormal set_num_interop_threads set_warn_always sigmoid_ sin_ sinc sinc_ sinh_
    slice_copy slice_inverse slice_scatter smm sparse_bsc_tensor sparse_bsr_tensor
    sparse_compressed_tensor sparse_coo_tensor sparse_csc_tensor sparse_csr_tensor split_copy
    split_with_sizes split_with_sizes_copy spmm sqrt_ square_ squeeze_copy sspaddmm stft
    sym_constrain_range sym_constrain_range_for_size sym_float sym_fresh_size sym_int sym_ite
    sym_max sym_min sym_not sym_sqrt sym_sum t_copy tan_ tanh_ thread_safe_generator threshold
    threshold_ transpose_copy triangular_solve triplet_margin_loss trunc_ unbind_copy
    unfold_copy unify_type_list unsafe_chunk unsafe_split unsafe_split_with_sizes unsqueeze_copy
    values_copy vander view_as_complex view_as_complex_copy view_as_real view_as_real_copy
    view_copy vmap wait xlogy_ zero_
""".split())

METHODS = frozenset("""
    acosh_ addmm_ adjoint angle arccosh_ arcsinh_ arctanh_ as_strided as_strided_
    as_strided_scatter as_subclass asinh_ atanh_ bfloat16 bitwise_not_ byte cauchy_ ccol_indices
    cdouble cfloat chalf char coalesce col_indices conj conj_physical conj_physical_
    const_data_ptr crow_indices cumprod_ cumsum_ dense_dim dequantize diagonal_scatter digamma
    digamma_ dim_order divide_ eig eq_ erfinv erfinv_ fill_diagonal_ fix fix_ float_power_ frexp
    gcd gcd_ ge_ geometric_ geqrf ger greater_ greater_equal_ gt_ hardshrink hash_tensor
    heaviside heaviside_ i0 i0_ igamma igamma_ igammac igammac_ index index_reduce index_reduce_
    indices int_repr ipu is_coalesced is_complex is_conj is_distributed is_inference is_neg
    is_nonzero is_pinned is_same_size is_set_to is_shared is_signed isreal istft lcm lcm_ ldexp
    ldexp_ le_ lerp_ less_ less_equal_ lgamma lgamma_ log_normal_ logical_not_ lstsq lt_ lu
    lu_solve map2_ module_load mtia multiply_ mvlgamma mvlgamma_ nan_to_num_ narrow_copy ne_
    negative_ new new_empty_strided nextafter nextafter_ nonzero_static not_equal_ orgqr ormqr
    pin_memory polygamma polygamma_ prelu q_per_channel_axis q_per_channel_scales
    q_per_channel_zero_points q_scale q_zero_point qscheme record_stream reinforce renorm
    renorm_ resize resize_ resize_as resize_as_ resize_as_sparse_ resolve_conj resolve_neg
    row_indices select_scatter set_ share_memory_ short sinc sinc_ slice_inverse slice_scatter
    smm solve sparse_dim sparse_mask sparse_resize_ sparse_resize_and_clear_ split_with_sizes
    squeeze_ sspaddmm stft storage storage_type subtract_ sum_to_size swapaxes_ swapdims_ symeig
    t_ to_dense to_mkldnn to_padded_tensor to_sparse to_sparse_bsc to_sparse_bsr to_sparse_coo
    to_sparse_csc to_sparse_csr transpose_ triangular_solve tril_ triu_ true_divide_
    unsafe_chunk unsafe_split unsafe_split_with_sizes unsqueeze_ untyped_storage values xpu
""".split())


class NotImplementedInJitgrad(NotImplementedError, AttributeError):
    """A torch name jitgrad lacks."""


def missing(name, where):
    return NotImplementedInJitgrad(f"{where}.{name} is not implemented in jitgrad yet (PyTorch has it)")


class Missing:
    """A Tensor method jitgrad lacks, as a class attribute: reading it raises the error naming
    it (an AttributeError too, so hasattr is False). Not a __getattr__ on Tensor: a class that
    defines one makes CPython 3.11 look up every tensor attribute the slow way."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __get__(self, obj, owner=None):
        raise missing(self.name, "Tensor")


if __name__ == "__main__":
    import inspect
    import textwrap

    import torch

    import jitgrad

    def _block(names):
        return textwrap.fill(" ".join(sorted(names)), 96, initial_indent="    ", subsequent_indent="    ")
    print(torch.__version__)
    print(_block(n for n in torch.__all__ if n[:1].islower() and not hasattr(jitgrad, n)
                 and callable(getattr(torch, n, None)) and not inspect.isclass(getattr(torch, n))))
    print()
    print(_block(n for n in dir(torch.Tensor) if n[:1].islower() and not hasattr(jitgrad.Tensor, n)
                 and callable(getattr(torch.Tensor, n, None))))
